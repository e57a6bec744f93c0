"""The one exception type the CLI turns into a clean one-line message."""


class UserError(Exception):
  """Bad input from the user (config, data, checkpoint, CLI); says how to fix it.

  `exit_code` 2 is for malformed input caught before any work starts.
  """

  def __init__(self, message: str, exit_code: int = 2):
    super().__init__(message)
    self.exit_code = exit_code


def require(condition: bool, message: str) -> None:
  """UserError(message) unless `condition`: for checks of the user's input."""
  if not condition:
    raise UserError(message)
