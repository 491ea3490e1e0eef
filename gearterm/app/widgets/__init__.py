"""One widget per file: the chat, the prompt, and the panes beside them."""
