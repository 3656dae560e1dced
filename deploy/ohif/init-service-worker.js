/* Replaces OHIF's init-service-worker.js, which unregisters every service
 * worker of the origin (the portal's too) and registers OHIF's own: on the
 * portal's origin, OHIF runs without a service worker (docs/viewer-ohif.md). */
