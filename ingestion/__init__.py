"""Harbor's Python side: dlt sources and pipelines, the demo source generator and the `harbor` command line."""
