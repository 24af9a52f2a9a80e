// The profile format. Unknown keys are errors (strictObject), every field says
// what it is for, and defaults live here rather than scattered through stages.

import { z } from 'zod';
import { DEFAULT_HEALTH_CHECKS, DEFAULT_KERNEL_ARGS, HEALTH_CHECKS, NODE_SSH_KEY_TYPES, TRIAL_DEFAULTS } from './boot/contract.ts';

const imageSchema = z.strictObject({
  sizeGiB: z.number().positive().max(1024).describe('apparent size of the sparse image file'),
  filesystem: z.enum(['ext4', 'btrfs']).describe('filesystem inside hn-root.img'),
  label: z.string().min(1).max(16).describe('filesystem label of the image'),
  fileName: z.string().regex(/^[\w.-]+\.img$/).describe('name of the finished image'),
});

const debianSchema = z.strictObject({
  suite: z.string().min(1).describe('Debian suite, e.g. bookworm'),
  mirror: z.string().url().optional().describe('mirror URL; default: the first one the host apt sources name'),
  variant: z.enum(['minbase', 'essential', 'apt', 'required', 'important', 'standard']),
  components: z.array(z.string()).min(1),
  installRecommends: z.boolean(),
});

const gentooSchema = z.strictObject({
  variant: z.string().min(1).describe('stage3 variant, e.g. systemd or openrc'),
  mirrors: z.array(z.string().url()).min(1).describe('distfiles mirrors, tried in order'),
  stage3: z.string().regex(/^(latest|\d{8}T\d{6}Z)$/).describe("'latest' or a pinned timestamp"),
  releaseKeyFingerprint: z.string().regex(/^[0-9A-F]{40}$/).describe('OpenPGP fingerprint the stage3 signature must match'),
  keyring: z
    .string()
    .optional()
    .describe('air-gapped builders: armored file holding the pinned keys (relative to the repository; --keyring overrides); nothing is fetched then'),
  keys: z
    .strictObject({
      sources: z.array(z.enum(['keyserver', 'wkd'])).default(['keyserver', 'wkd']).describe('where the pinned keys are fetched from, in order'),
      keyserver: z.string().url().default('https://keys.gentoo.org').describe('HKP key server queried by fingerprint'),
      wkd: z
        .record(z.string().regex(/^[0-9A-F]{40}$/), z.string().regex(/^[^@\s]+@[^@\s]+$/))
        .default({})
        .describe('WKD address of each pinned fingerprint (a key without one is not looked up by WKD)'),
      wkdBase: z.string().url().optional().describe('serve WKD lookups from this base instead of the address\'s domain (a mirror)'),
    })
    .default({ sources: ['keyserver', 'wkd'], keyserver: 'https://keys.gentoo.org', wkd: {} })
    .describe('how the keys pinned by releaseKeyFingerprint and repository.snapshotKeyFingerprint are fetched at build time'),
  portageProfile: z.string().min(1),
  repository: z.strictObject({
    snapshot: z.string().regex(/^\d{8}$/).optional(),
    gitCommit: z.string().regex(/^[0-9a-f]{40}$/).optional(),
    snapshotKeyFingerprint: z.string().regex(/^[0-9A-F]{40}$/).optional().describe('OpenPGP fingerprint the snapshot signature must match; default: Gentoo repository snapshot key DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D'),
  }),
  binhost: z.strictObject({ enabled: z.boolean(), url: z.string().url(), requireSignature: z.boolean() }),
  makeConf: z.record(z.string(), z.string()),
  buildOnlyMakeConf: z.record(z.string(), z.string()),
  use: z.record(z.string(), z.array(z.string())),
  acceptKeywords: z.record(z.string(), z.array(z.string())),
  licenses: z.record(z.string(), z.array(z.string())),
  packages: z.array(z.string()),
  networkPackages: z
    .array(z.string())
    .default(['net-fs/xtreemfs'])
    .describe('packages whose build must reach the network (XtreemFS: Maven); package.env lifts network-sandbox for them only, on the build host'),
  xtreemfsServices: z
    .array(z.enum(['dir', 'mrc', 'osd', 'client']))
    .default(['dir', 'mrc', 'osd'])
    .describe('XtreemFS services a node runs (systemd units enabled in the image); client mounts the volume of /etc/xos/xtreemfs/mount.conf'),
  kernelConfigFragment: z.string().optional(),
  kernelRequiredOptions: z
    .string()
    .optional()
    .describe('file of CONFIG_X=y|m lines the final kernel config must have, or the build fails; default pipeline/gentoo/kernel/required.config'),
});

export const profileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
  description: z.string(),
  extends: z.string().optional().describe('profile this one builds on'),
  abstract: z.boolean().optional().describe('a base that cannot be built alone'),
  base: z.enum(['debian', 'gentoo']),
  image: imageSchema,
  packages: z.array(z.string()).describe('packages of the node (added to those of the profile it extends)'),
  debian: debianSchema.optional(),
  gentoo: gentooSchema.optional(),
  layout: z.strictObject({
    hostname: z.string().describe('placeholder hostname; the node instantiates its own at boot'),
    directories: z.array(z.string().startsWith('/')),
  }),
  publish: z
    .strictObject({
      store: z.string().optional().describe('store the build publishes to (file:///path, s3://bucket/prefix, oci://host/repo); --store overrides'),
      channel: z.string().default('nightly').describe('channel a build publishes into; --channel overrides'),
    })
    .optional()
    .describe('where a finished build is published (hnforge publish) without naming a store on the command line'),
  update: z
    .strictObject({
      store: z.string().optional().describe('where nodes pull images from (hn-update): a directory such as /warehouse/images, http(s)://host/path, or oci://host/repository; the same layout publish writes'),
      channel: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/).default('nightly').describe('channel nodes follow'),
      schedule: z.string().regex(/^[^\n]+$/).default('daily').describe('when hn-update.timer runs (systemd OnCalendar=)'),
      randomDelay: z.string().regex(/^[^\n]+$/).default('1h').describe("spread of the fleet's start times (systemd RandomizedDelaySec=), so the store is not hit by every node at once"),
      allowUnsigned: z.boolean().default(false).describe('stage versions from a channel without a signature (never for a real fleet)'),
    })
    .default({ channel: 'nightly', schedule: 'daily', randomDelay: '1h', allowUnsigned: false })
    .describe('how nodes look for and stage new images (/etc/hn-update.conf, hn-update.timer)'),
  instantiate: z
    .strictObject({
      statePath: z.string().regex(/^[\w.-]+(\/[\w.-]+)*$/, 'a relative path of plain names').default('hnforge').describe('the state repository below /warehouse: node records in /warehouse/<statePath>/nodes/<id>/ (a copy on /hostpart/data/hn-state/)'),
      domain: z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/).optional().describe('DNS domain of the nodes (FQDN, Puppet certname) unless a record sets its own'),
      xtreemfsDirs: z.array(z.string().regex(/^[\w.-]+:\d{1,5}$/, 'host:port')).default([]).describe("the cluster's XtreemFS DIR endpoints (host:port) the MRC and OSD register with; default: the node's own DIR"),
      sshKeyTypes: z.array(z.enum(NODE_SSH_KEY_TYPES)).min(1).default([...NODE_SSH_KEY_TYPES]).describe('SSH host key types a new node generates'),
      warehouse: z
        .strictObject({
          what: z.string().regex(/^[^\s'"\\]+$/).describe('what is mounted: for XtreemFS dir1,dir2,dir3/volume; a directory for a bind'),
          type: z.string().regex(/^[\w.]+$/).describe('filesystem type: xtreemfs, or none for a bind'),
          options: z.string().regex(/^[^\s'"\\]*$/).default('').describe('mount options (e.g. bind, allow_other)'),
        })
        .optional()
        .describe('the /warehouse mount (a systemd mount unit ordered after hn-instantiate); none: /warehouse stays an empty directory'),
    })
    .default({ statePath: 'hnforge', xtreemfsDirs: [], sshKeyTypes: [...NODE_SSH_KEY_TYPES] })
    .describe("each node's identity at boot (hn-instantiate) and the state repository it is kept in"),
  boot: z.strictObject({
    modules: z.array(z.string()).describe('kernel modules the initramfs loads, in order'),
    hostpartFilesystems: z.array(z.enum(['ext4', 'btrfs'])),
    kernelArgs: z
      .array(z.string().regex(/^[^\s'"\\$;{}]+$/, 'one kernel argument without spaces, quotes, $, ; or braces'))
      .default([...DEFAULT_KERNEL_ARGS])
      .describe('kernel command line the image is booted with (GRUB reads it from the image); default: console on the screen and on ttyS0 for serial-over-LAN'),
    trial: z
      .strictObject({
        budget: z.number().int().min(1).max(TRIAL_DEFAULTS.maxBudget).default(TRIAL_DEFAULTS.budget)
          .describe('boots a newly promoted image gets to confirm itself (hn-health) before GRUB goes back to the previous image'),
        timeoutSec: z.number().int().min(30).max(65535).default(TRIAL_DEFAULTS.timeoutSec)
          .describe('seconds from the initramfs to the confirmation of a trial boot before the watchdog reboots (a hung userspace)'),
      })
      .default({ budget: TRIAL_DEFAULTS.budget, timeoutSec: TRIAL_DEFAULTS.timeoutSec })
      .describe('trial boots of a new image (automatic rollback); travels in the image as hn.trial_budget / hn.trial_timeout'),
  }),
  health: z
    .strictObject({
      checks: z.array(z.enum(HEALTH_CHECKS)).min(1).default([...DEFAULT_HEALTH_CHECKS])
        .describe('what hn-health checks before it confirms a new image (hostpart, data0, docker, lxc, qemu, warehouse); a declared check the image cannot pass fails, it is never skipped'),
      waitSec: z.number().int().min(0).max(3600).default(120)
        .describe('seconds hn-health retries failing checks (services still starting) before it gives up'),
    })
    .default({ checks: [...DEFAULT_HEALTH_CHECKS], waitSec: 120 })
    .describe('the health check that confirms a new image (/etc/hn-health.conf, hn-health.service)'),
});

export type ResolvedProfile = z.infer<typeof profileSchema>;

/** A profile file before inheritance: everything optional except its name. */
export const partialProfileSchema = z.looseObject({ name: z.string(), extends: z.string().optional() });
