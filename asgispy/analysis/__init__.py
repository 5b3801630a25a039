"""What is worked out from the model rather than recorded in it: the ASGI protocol checker and
its rules, the records of a streamed body, what each middleware layer did."""
