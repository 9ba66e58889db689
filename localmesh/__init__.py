"""Running the services on one machine: processes now, the Envoy mesh on top of them."""
