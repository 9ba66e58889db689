"""What the calculator and the gateway share: settings, telemetry, lifecycle and errors."""
