"""Host side of the sandboxes that run REPL code, and the driver that runs inside them."""
