"""What every layer may use: the one-line user error, each metric's direction, the device mesh."""
