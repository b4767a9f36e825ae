"""The approved artifact: manifest (what was done, hashes, versions), report and atomic emit."""
