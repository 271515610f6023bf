/**
 * deploy/kubernetes/ without a cluster: every object validates against the Kubernetes JSON
 * schemas bundled in kubernetes-models (and the Prometheus Operator's for the ServiceMonitor),
 * offline; then what the schemas cannot say is checked across objects: the stop timings add up,
 * the security context is locked down, selectors and named ports match, the routers and the
 * deployer reach the StatefulSet's members, and every image tag is pinned.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { ServiceAccount, Service } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type { IContainer, IPodSpec } from 'kubernetes-models/v1';
import { REPO, readRepoFile } from './files.js';

/** One parsed object; `spec` is read freely here, the schemas check its shape. */
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; [k: string]: unknown };

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'batch/v1/Job': Job,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

function validate(m: Manifest): void {
  const Model = MODELS[`${m.apiVersion}/${m.kind}`];
  if (!Model) throw new Error(`${m.apiVersion} ${m.kind} ${m.metadata.name}: no schema for this kind`);
  new Model(m as never).validate();
}

const files = readdirSync(`${REPO}deploy/kubernetes`).filter((f) => f.endsWith('.yaml')).sort();
const manifests: Manifest[] = files.flatMap((f) =>
  parseAllDocuments(readRepoFile(`deploy/kubernetes/${f}`)).map((d) => {
    if (d.errors.length > 0) throw new Error(`${f}: ${d.errors[0]!.message}`);
    return d.toJS() as Manifest;
  }),
);
const find = (kind: string, name: string): Manifest => {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
  if (!m) throw new Error(`no ${kind} ${name} in deploy/kubernetes/`);
  return m;
};
const seconds = (d: string): number => Number(/^(\d+)s$/.exec(d)![1]);
const envOf = (c: IContainer): Record<string, string> => Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));

function expectLockedDown(pod: IPodSpec, what: string): void {
  expect(pod.securityContext, what).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(pod.securityContext?.runAsUser, what).toBeGreaterThan(0);
  expect(pod.automountServiceAccountToken, what).toBe(false);
  for (const c of pod.containers) {
    expect(c.securityContext, `${what} ${c.name}`).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } });
    expect(c.resources?.requests, `${what} ${c.name}`).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(c.resources?.limits?.memory, `${what} ${c.name}`).toBeDefined();
  }
}

describe('deploy/kubernetes/', () => {
  it('validates against the Kubernetes schemas, every object', () => {
    expect(files).toEqual(['deployer-job.yaml', 'etcd.yaml', 'router.yaml', 'servicemonitor.yaml']);
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([
      'Job/deploy-mango-v2',
      'Service/etcd', 'StatefulSet/etcd', 'PodDisruptionBudget/etcd',
      'ServiceAccount/paas-router', 'Deployment/paas-router', 'PodDisruptionBudget/paas-router', 'Service/paas-router', 'Service/paas-router-metrics',
      'ServiceMonitor/paas-router',
    ]);
    for (const m of manifests) expect(() => validate(m), `${m.kind} ${m.metadata.name}`).not.toThrow();
    // The schemas do catch a wrong type and a missing required field.
    const router = structuredClone(find('Deployment', 'paas-router'));
    router.spec.template.spec.containers[0].ports[0].containerPort = '8080';
    expect(() => validate(router)).toThrow(/containerPort must be integer/);
    const pdb = structuredClone(find('PodDisruptionBudget', 'paas-router'));
    pdb.spec.maxUnavailable = [1];
    expect(() => validate(pdb)).toThrow(/maxUnavailable/);
    const job = structuredClone(find('Job', 'deploy-mango-v2'));
    delete job.spec.template.spec.containers[0].name;
    expect(() => validate(job)).toThrow(/name/);
  });

  it('router Deployment: ready on /readyz, a stop that outlasts preStop + --drain-wait + --shutdown-timeout, locked down', () => {
    const d = find('Deployment', 'paas-router');
    const pod = d.spec.template.spec as IPodSpec;
    const c = pod.containers.find((x) => x.name === 'router')!;
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    const env = envOf(c);
    expect(env.ROUTER_ADMIN).toBe('0.0.0.0:9090');
    expect(c.ports).toEqual([{ name: 'http', containerPort: 8080 }, { name: 'admin', containerPort: 9090 }]);
    expect(c.env?.find((e) => e.name === 'ROUTER_ID')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    const preStop = c.lifecycle?.preStop?.exec?.command;
    expect(preStop?.[0]).toBe('sleep');
    const stop = Number(preStop![1]) + seconds(env.ROUTER_DRAIN_WAIT!) + seconds(env.ROUTER_SHUTDOWN_TIMEOUT!);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(stop);
    expect(d.spec.strategy.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    expectLockedDown(pod, 'router');
    // The read-only root leaves /tmp (Node's compile cache) on an emptyDir.
    expect(c.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(pod.volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }]);
    expect(pod.serviceAccountName).toBe(find('ServiceAccount', 'paas-router').metadata.name);
  });

  it('selectors, named ports and scrape settings line up across objects', () => {
    const podLabels = find('Deployment', 'paas-router').spec.template.metadata.labels as Record<string, string>;
    const router = find('Deployment', 'paas-router').spec.template.spec.containers[0] as IContainer;
    const portNames = new Set(router.ports!.map((p) => p.name));
    for (const name of ['paas-router', 'paas-router-metrics']) {
      const svc = find('Service', name);
      expect(podLabels).toMatchObject(svc.spec.selector);
      for (const p of svc.spec.ports) expect(portNames).toContain(p.targetPort);
    }
    expect(podLabels).toMatchObject(find('PodDisruptionBudget', 'paas-router').spec.selector.matchLabels);
    expect(find('Deployment', 'paas-router').spec.selector.matchLabels).toEqual(podLabels);
    const metrics = find('Service', 'paas-router-metrics');
    expect(metrics.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090', 'prometheus.io/path': '/metrics' });
    const monitor = find('ServiceMonitor', 'paas-router');
    expect(metrics.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints).toEqual([{ port: 'admin', path: '/metrics', interval: '15s' }]);
    expect(metrics.spec.ports.map((p: { name: string }) => p.name)).toContain('admin');
  });

  it('etcd: three members of a StatefulSet that the routers and the deployer name, a quorum kept through drains', () => {
    const sts = find('StatefulSet', 'etcd');
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    const headless = find('Service', sts.spec.serviceName);
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    const members = [0, 1, 2].map((i) => `${sts.metadata.name}-${i}.${sts.spec.serviceName}`);
    const pod = sts.spec.template.spec as IPodSpec;
    const args = pod.containers[0]!.args!;
    expect(args).toContain(`--initial-cluster=${members.map((m) => `${m.split('.')[0]}=http://${m}:2380`).join(',')}`);
    expect(args).toContain('--advertise-client-urls=http://$(POD_NAME).etcd:2379');
    expectLockedDown(pod, 'etcd');
    expect(find('PodDisruptionBudget', 'etcd').spec.minAvailable).toBe(2);
    const clientUrls = members.map((m) => `http://${m}:2379`).join(',');
    expect(envOf(find('Deployment', 'paas-router').spec.template.spec.containers[0]).ETCD_ENDPOINTS).toBe(clientUrls);
    expect(envOf(find('Job', 'deploy-mango-v2').spec.template.spec.containers[0]).ETCD_ENDPOINTS).toBe(clientUrls);
  });

  it('the deployer Job runs paas-deploy redeploy from the router image, once, within a deadline', () => {
    const job = find('Job', 'deploy-mango-v2');
    const pod = job.spec.template.spec as IPodSpec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.containers[0]!.command).toEqual(['paas-deploy', 'redeploy', 'mango']);
    expect(envOf(pod.containers[0]!)).toMatchObject({ PAAS_DEPLOY_URLS: expect.stringMatching(/^http:\/\/\S+(,http:\/\/\S+)*$/), PAAS_DEPLOY_RELEASE: 'v2' });
    expect(job.spec.activeDeadlineSeconds).toBeGreaterThan(30 + 10 + 30);
    expectLockedDown(pod, 'deployer');
  });

  it('pins every image to a version', () => {
    const images = manifests.flatMap((m) => {
      const pod = (m.spec?.template?.spec ?? undefined) as IPodSpec | undefined;
      return pod ? pod.containers.map((c) => c.image!) : [];
    });
    expect(images.sort()).toEqual(['paas-routing:0.1.0', 'paas-routing:0.1.0', 'quay.io/coreos/etcd:v3.5.17']);
    // The image's version is the packages' version.
    expect(JSON.parse(readRepoFile('packages/router/package.json')).version).toBe('0.1.0');
  });
});
