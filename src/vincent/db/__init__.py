"""Tables, the engine and the session factory."""
