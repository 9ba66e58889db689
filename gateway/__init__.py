"""The gateway: the public service, which forwards ``/calcular`` to the calculator."""
