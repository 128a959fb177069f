"""Google Workspace behind the domain's ports. Google's JSON stays inside this package:
every method is serialize -> call -> deserialize."""
