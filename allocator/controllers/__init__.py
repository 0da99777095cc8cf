"""Control loops: each watches the store through informers and acts on a pure plan."""
