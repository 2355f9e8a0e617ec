"""End-to-end recipes: data -> tokenizer -> model -> trainer. The CLI and the demo call these."""
