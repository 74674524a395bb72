"""Tables on PDF pages: detection and structure from the page's characters and vector
graphics (:mod:`docmill.processors.tables.extract`)."""
