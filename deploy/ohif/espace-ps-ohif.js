/* The two inline scripts of OHIF's index.html, moved to a file so that the
 * route table's Content-Security-Policy needs no 'unsafe-inline' (written by
 * deploy/ohif/install.sh; docs/viewer-ohif.md). */
console.time('scriptToView');
window.PUBLIC_URL = '/visionneuse/';
function browserImportFunction(n) {
  return import(n);
}
