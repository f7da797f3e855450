"""Test doubles that ship with the package: fake provider servers speaking the real wire formats
(``fake_openai``, ``fake_anthropic``, ``fake_gdc``) and ``FunctionModel`` (``scripted``), a model
whose replies a Python function scripts. Imported by module (they start servers, not on import).
"""

__all__: list[str] = []  # nothing re-exported: import the module you need
