"""One screen per file: the chat, and the modal pickers and help over it."""
