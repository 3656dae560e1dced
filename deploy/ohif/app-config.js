/* OHIF v3 configuration written by espace-ps (docs/viewer-ohif.md).
 * Installed as /visionneuse/app-config.js by deploy/ohif/install.sh, in place
 * of the shipped one (which points at a public demo server on the internet
 * with the study list on).
 *
 * One data source: espace-ps's own DICOMweb routes, on the portal's origin
 * (policies/viewers/ohif.toml; every call is decided per study there).
 * No study list (an unscoped QIDO would be refused anyway), no other data
 * source, no URL-driven configuration, no analytics. */
window.config = {
  name: 'espace-ps',
  routerBasename: '/visionneuse',
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: false,
  investigationalUseDialog: { option: 'never' },
  maxNumberOfWebWorkers: 3,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 6 },
  showErrorDetails: 'production',
  defaultDataSourceName: 'espace-ps',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'espace-ps',
      configuration: {
        friendlyName: 'espace-ps',
        name: 'espace-ps',
        qidoRoot: window.location.origin + '/dicom-web',
        wadoRoot: window.location.origin + '/dicom-web',
        wadoUriRoot: window.location.origin + '/dicom-web',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: false,
        staticWado: false,
        singlepart: false,
        bulkDataURI: { enabled: false },
        omitQuotationForMultipartRequest: true,
      },
    },
  ],
};
