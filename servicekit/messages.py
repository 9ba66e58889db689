"""Every Spanish message the API answers, in one place.

The API is Spanish, the seed's contract: field names, operations, error messages and the page;
clients may match on these words, so they change only on purpose. Everything an operator reads
(CLI output, logs, docs) is English and never comes from here.

A message that names a value is a ``str.format`` template, filled where the value lives
(``calculator.arithmetic``, ``calculator.jsondecode``, the calculator's settings).
``tests/servicekit/test_messages.py`` keeps README.md's error tables equal to this module, and
``INGRESS`` equal to the ingress's local replies in ``istio/ingress/ingressgateway-envoyfilter.yaml``
(YAML a cluster applies as it is, so it cannot import them).
"""

from __future__ import annotations

# A service's answer to an HTTP error of its own, by status (servicekit.errors).
HTTP = {
    400: "Solicitud no válida",
    404: "Ruta no encontrada",
    405: "Método no permitido",
    408: "El cuerpo de la solicitud no llegó a tiempo",
    413: "El cuerpo de la solicitud es demasiado grande",
    415: "El cuerpo debe enviarse como JSON (Content-Type: application/json)",
    431: "Las cabeceras de la solicitud son demasiado grandes",
    500: "Error interno del servidor",
}

# gunicorn's refusals before the app, by status (servicekit.gunicorn_worker).
GUNICORN = {
    400: "Solicitud no válida",
    403: "Solicitud prohibida",
    408: "El cuerpo de la solicitud no llegó a tiempo",
    414: "La línea de la solicitud es demasiado larga",
    417: "Expectativa no soportada",
    431: "Las cabeceras de la solicitud son demasiado grandes",
    500: "Error interno del servidor",
    501: "Codificación de transferencia no soportada",
}

# Both services: a Host header that is not one authority (servicekit.inbound).
INVALID_HOST = "La cabecera Host no es válida: debe ser un nombre o una dirección IP, con un puerto opcional"

# The calculator. The seed's three, word for word:
INVALID_OPERATION = "Operación no válida"
NOT_A_NUMBER = "Los números deben ser enteros o de punto flotante"
DIVISION_BY_ZERO = "No se puede dividir por cero"
# ...and ours, for what the seed did not check.
BODY_NOT_OBJECT = "El cuerpo debe ser un objeto JSON"
OPERANDS_OUT_OF_RANGE = "Los números deben estar entre {low} y {high} y ser finitos"
RESULT_OUT_OF_RANGE = "El resultado está fuera del rango de 64 bits con signo ({low} a {high})"
MISSING_FIELD = "Falta el campo obligatorio '{field}'"
INVALID_JSON = "El cuerpo no es JSON válido"
TOO_DEEP = "El JSON anida más de {depth} niveles de listas u objetos"
DUPLICATE_KEY = "La clave '{key}' aparece más de una vez en el mismo objeto"
LIMIT_OUT_OF_RANGE = "El parámetro 'limite' debe ser un entero entre 1 y {limit_max}"
INJECTED_FAULT = "Fallo inyectado a propósito: demostración de tolerancia a fallas"

# The gateway, for its call to the calculator.
CALCULATOR_UNAVAILABLE = "El servicio de cálculo no está disponible"
CALCULATOR_TIMEOUT = "El servicio de cálculo no respondió a tiempo"
CALCULATOR_ERROR = "El servicio de cálculo respondió con un error"

# The statuses each message above is answered with.
SERVICES = {
    INVALID_HOST: (400,),
    INVALID_OPERATION: (400,),
    NOT_A_NUMBER: (400,),
    DIVISION_BY_ZERO: (400,),
    BODY_NOT_OBJECT: (400,),
    OPERANDS_OUT_OF_RANGE: (400,),
    RESULT_OUT_OF_RANGE: (400,),
    MISSING_FIELD: (400,),
    INVALID_JSON: (400,),
    TOO_DEEP: (400,),
    DUPLICATE_KEY: (400,),
    LIMIT_OUT_OF_RANGE: (400,),
    INJECTED_FAULT: (500, 502, 503, 504),  # calculator.faults.STATUSES
    CALCULATOR_UNAVAILABLE: (503,),
    CALCULATOR_TIMEOUT: (504,),
    # 503 and 504 of the calculator's mesh keep their status; any other failure is a 502.
    CALCULATOR_ERROR: (502, 503, 504),
}

# The ingress gateway's own answers, by status: its local reply mapping.
INGRESS = {
    400: "Solicitud no válida",
    403: "Solicitud prohibida",
    404: "Ruta no encontrada",
    408: "La solicitud no llegó a tiempo",
    413: "El cuerpo de la solicitud es demasiado grande",
    426: "Se requiere HTTP/1.1 o superior",
    431: "Las cabeceras de la solicitud son demasiado grandes",
    502: "El servicio respondió con un error",
    503: "El servicio no está disponible",
    504: "El servicio no respondió a tiempo",
}
