"""The engine: supervised worker processes, the run loop, and the library entry point."""
