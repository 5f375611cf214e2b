"""The web interface: ``mlledger serve`` answers pages at ``/`` beside the API at
``/api/v1`` (``registry.web.app.create_app``)."""
