"""Helpers shared by tests/runtime and tests/consumers (importable because pyproject's
``[tool.pytest.ini_options].pythonpath`` holds ``tests``).

- :mod:`.connections_stub`: a real HTTP server on 127.0.0.1 answering like @connections;
- :mod:`.kinesis_events`: the exact Lambda Kinesis events of tests/events/ and variants;
- :mod:`.roster_table`: the roster table's name, schema and items as the VTL writes them;
- :mod:`.retry`: a retry policy that does not wait;
- :mod:`.fixtures`: the pytest fixtures, registered for every test by ``pytest_plugins`` in
  tests/conftest.py.
"""
