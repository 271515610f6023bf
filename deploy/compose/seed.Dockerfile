# The compose stack's seed job: etcdctl (a static binary, from the etcd image the stack runs) and
# deploy/compose/seed.sh on busybox, since the etcd image has no shell.
FROM quay.io/coreos/etcd:v3.5.17 AS etcd

FROM busybox:1.37.0
COPY --from=etcd /usr/local/bin/etcdctl /usr/local/bin/etcdctl
COPY deploy/compose/seed.sh /usr/local/bin/seed.sh
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/seed.sh"]
