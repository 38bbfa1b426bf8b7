"""The Outlook add-in, as far as the server is concerned: its manifests for one deployment.

The task pane itself is static files (`static/pane/`); this package only says to Outlook where
they live (`manifest.render_xml`, `manifest.unified_manifest`), so it needs no settings and no
database.
"""
