"""Controllers: level-triggered reconcile loops that talk to the API through
``control.client`` like any other client, fed by watches through a WorkQueue."""
