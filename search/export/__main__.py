"""``python -m search.export``: see :mod:`search.export`."""
from search.export import main

if __name__ == "__main__":
    main()
