"""A Django project in one module, configured in code and served by Django's ASGI handler."""

from __future__ import annotations

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="asgispy-tests-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from tests.apps.raw import AppError


async def item(request: HttpRequest, item_id: int) -> HttpResponse:
    return JsonResponse({"item_id": item_id, "q": request.GET.get("q")})


async def upload(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"length": len(request.body), "method": request.method})


async def fail(request: HttpRequest) -> HttpResponse:
    raise AppError("django view failed")


urlpatterns = [
    path("items/<int:item_id>", item),
    path("upload", upload),
    path("raise", fail),
]

app = ASGIHandler()
