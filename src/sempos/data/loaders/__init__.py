"""One module per dataset family: its official files (URLs, pinned checksums) as a DatasetSpec and its loader.

Nothing here registers anything: sempos.data.catalog lists the specs explicitly. Loaders take the download
directory data/raw/<name>/ (plus size/resize for image datasets) and return sempos.data.spec.Arrays.
"""
