"""Tasks plug a model family into the one trainer: batching, loss, metrics."""
