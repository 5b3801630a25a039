"""Where a collector listens and producers connect: ``unix:/path`` or ``tcp://127.0.0.1:PORT``.

By default both ends meet on a per-user Unix socket, in a directory only that user can
enter, so recorded traffic (bodies, headers) is never readable by other local users.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ENV_ADDRESS",
    "ENV_TOKEN",
    "Address",
    "AddressError",
    "default_address",
    "ensure_private_directory",
    "is_private_directory",
    "parse_address",
    "runtime_directory",
    "streamed_to",
]

#: The environment variable that tells ``Spy`` where its collector listens.
ENV_ADDRESS = "ASGISPY_ADDRESS"
#: The environment variable holding the token a collector on TCP asks of its producers.
ENV_TOKEN = "ASGISPY_TOKEN"

SOCKET_NAME = "asgispy.sock"


class AddressError(ValueError):
    """An address that cannot be parsed or may not be used."""


@dataclass(frozen=True)
class Address:
    """A collector's address: a Unix socket path, or a TCP host and port."""

    scheme: Literal["unix", "tcp"]
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can reach the address (always true of a Unix socket)."""
        if self.scheme == "unix":
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def with_port(self, port: int) -> Address:
        return Address(self.scheme, self.path, self.host, port)


def parse_address(text: str | Address) -> Address:
    """Parse ``unix:/path/to.sock``, ``tcp://HOST:PORT`` (or a bare absolute socket path)."""
    if isinstance(text, Address):
        return text
    value = text.strip()
    if value.startswith("unix:"):
        path = value[len("unix:") :]
        if path.startswith("//"):
            path = path[2:]  # unix:///run/x.sock, URL style
        if not path:
            raise AddressError(f"{text!r}: a unix address needs a path, e.g. unix:/tmp/asgispy.sock")
        return Address("unix", path=os.path.abspath(os.path.expanduser(path)))
    if value.startswith("tcp://"):
        rest = value[len("tcp://") :].rstrip("/")
        if rest.startswith("["):
            host, sep, port_text = rest[1:].partition("]:")
        else:
            host, sep, port_text = rest.rpartition(":")
        if not sep or not host:
            raise AddressError(f"{text!r}: a tcp address is tcp://HOST:PORT, e.g. tcp://127.0.0.1:7890")
        try:
            port = int(port_text)
        except ValueError:
            raise AddressError(f"{text!r}: the port must be a number, not {port_text!r}") from None
        if not 0 <= port <= 65535:
            raise AddressError(f"{text!r}: the port must be between 0 and 65535")
        return Address("tcp", host=host, port=port)
    if value.startswith(("/", "./", "~")):
        return Address("unix", path=os.path.abspath(os.path.expanduser(value)))
    raise AddressError(f"{text!r}: an address is unix:/path/to.sock or tcp://127.0.0.1:PORT")


def runtime_directory() -> Path:
    """This user's asgispy directory: ``$XDG_RUNTIME_DIR/asgispy`` or ``/tmp/asgispy-<uid>``."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        return Path(xdg) / "asgispy"
    return Path(tempfile.gettempdir()) / f"asgispy-{os.getuid()}"


def default_address() -> Address:
    """The per-user Unix socket that ``Spy`` and ``asgispy attach`` meet on by default."""
    return Address("unix", path=str(runtime_directory() / SOCKET_NAME))


def is_private_directory(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a real directory owned by this user that no one else may enter."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def ensure_private_directory(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` with mode 0700, or check that an existing one is ours and private.

    A directory someone else made (say, ``/tmp/asgispy-1000`` created by another user to
    catch this user's traffic) is refused, never adopted.
    """
    directory = Path(path)
    try:
        directory.mkdir(mode=0o700, parents=False)
    except FileExistsError:
        pass
    except FileNotFoundError:
        directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise AddressError(f"{directory} is not a directory; refusing to put a socket there")
    if st.st_uid != os.getuid():
        raise AddressError(f"{directory} belongs to another user (uid {st.st_uid}); refusing to use it")
    if st.st_mode & 0o077:
        os.chmod(directory, 0o700)
    return directory


def streamed_to(address: str | Address | bool | None) -> tuple[bool, str | Address | None]:
    """What a Spy's ``address`` option means: whether to stream, and where (None: the default
    socket). None or True read ``$ASGISPY_ADDRESS`` (``off`` streams nothing; a bad value is
    logged and streams nothing either); False streams nothing."""
    if address is False:
        return False, None
    if address is not None and address is not True:
        return True, address
    env = os.environ.get(ENV_ADDRESS, "").strip()
    if env.lower() in ("off", "none", "false", "0"):
        return False, None
    try:
        return True, (parse_address(env) if env else None)
    except ValueError as exc:
        logging.getLogger("asgispy").error("asgispy: ignoring %s (%s); not streaming", ENV_ADDRESS, exc)
        return False, None
