"""The running daemon: supervisor, controllers and the parts they drive."""
