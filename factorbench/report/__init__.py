"""The offline HTML report: jinja2 templates, inline SVG figures."""
