"""The editor's tests (a package, so its conftest does not shadow other suites' `conftest`)."""
