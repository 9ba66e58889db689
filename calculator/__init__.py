"""The calculator service: the seed's ``POST /calcular``, as v1 or v2."""
