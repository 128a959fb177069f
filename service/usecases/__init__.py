"""The daemon's use cases: each reads the state it needs from the store, decides with
pure domain functions and writes the outcome back, one transaction per effect. Running
a tick twice, in another process, or after a crash at any point leads to the same result.
"""

from .deps import Deps, Inputs, InputsSource, LockLost
from .tick import Controller

__all__ = ["Controller", "Deps", "Inputs", "InputsSource", "LockLost"]
