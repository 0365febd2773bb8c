"""How zdm reaches a cluster: driver sessions (:mod:`~zdm.clusters.connect`), Astra DB's secure
connect bundle (:mod:`~zdm.clusters.bundle`), the TLS contexts (:mod:`~zdm.clusters.tls`) and
why a TLS connection failed (:mod:`~zdm.clusters.tls_diagnosis`)."""
