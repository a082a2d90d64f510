"""ChargePilot push receiver: validate pushed charging sessions and store them in Table Storage."""
