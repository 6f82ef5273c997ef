"""Models of the paper exchange's own order book (imported by orders.models)."""
