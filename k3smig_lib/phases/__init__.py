"""One module per phase notebook; each exposes the functions its notebook cells call."""
