"""tunedoc: from "I have a machine" to "I am watching my QLoRA run converge"."""

__version__ = "0.1.0"
