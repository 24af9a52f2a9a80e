// The node's own tools (pipeline/node-files.ts) in the image, their units
// enabled, and hn-update's configuration from the profile's `update` section.
// On Debian this stage copies the files; on Gentoo the node package
// (sys-apps/hnforge-node) installed the same files from the same list during
// emerge, and this stage only enables and configures them.

import { join } from 'node:path';
import { IDENTITY, IMAGE_PATHS } from '../pipeline/boot/contract.ts';
import { need } from '../pipeline/context.ts';
import { HnError } from '../pipeline/errors.ts';
import { NODE_FILES, type NodeFile } from '../pipeline/node-files.ts';
import type { ResolvedProfile } from '../pipeline/profile-schema.ts';
import { quoteValue } from './release.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import type { StageDef } from '../pipeline/stage.ts';

/** /etc/hn-update.conf: `KEY="value"` lines hn-update reads (it parses them; it does not source them). */
export function updateConfText(update: ResolvedProfile['update']): string {
  const lines = [
    '# Written by hnforge from the profile\'s update section. hn-update reads it;',
    '# command-line options (--store, --channel) override it.',
    `HN_UPDATE_STORE=${quoteValue(update.store ?? '')}`,
    `HN_UPDATE_CHANNEL=${quoteValue(update.channel)}`,
    `HN_UPDATE_KEYRING=${quoteValue(IMAGE_PATHS.publishingKeyring)}`,
    `HN_UPDATE_ALLOW_UNSIGNED=${quoteValue(update.allowUnsigned ? 'yes' : 'no')}`,
    `HN_UPDATE_SCHEDULE=${quoteValue(update.schedule)}`,
  ];
  return lines.join('\n') + '\n';
}

/** /etc/hn-instantiate.conf: `KEY="value"` lines hn-instantiate reads (it parses them; it does not source them). */
export function instantiateConfText(inst: ResolvedProfile['instantiate']): string {
  return [
    "# Written by hnforge from the profile's instantiate section. hn-instantiate reads it.",
    `HN_STATE_PATH=${quoteValue(inst.statePath)}`,
    `HN_DOMAIN=${quoteValue(inst.domain ?? '')}`,
    `HN_XTREEMFS_DIRS=${quoteValue(inst.xtreemfsDirs.join(','))}`,
    `HN_KEY_TYPES=${quoteValue(inst.sshKeyTypes.join(','))}`,
  ].join('\n') + '\n';
}

const isLocalMount = (w: NonNullable<ResolvedProfile['instantiate']['warehouse']>) => w.type === 'none' || w.options.split(',').includes('bind');

/** The /warehouse mount unit, ordered after the node has its identity (XtreemFS needs it). */
export function warehouseMountUnit(w: NonNullable<ResolvedProfile['instantiate']['warehouse']>): string {
  return [
    '[Unit]',
    'Description=Cluster storage (state repository of the node records)',
    'After=hn-instantiate.service',
    'Wants=hn-instantiate.service',
    // The cluster storage waits for the network; a local directory or bind (tests) does not.
    ...(isLocalMount(w) ? [] : ['After=network-online.target', 'Wants=network-online.target']),
    '',
    '[Mount]',
    `What=${w.what}`,
    `Where=${IDENTITY.warehouseMount}`,
    `Type=${w.type}`,
    ...(w.options ? [`Options=${w.options}`] : []),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** /etc/hn-health.conf: `KEY="value"` lines hn-health reads (it parses them; it does not source them). */
export function healthConfText(health: ResolvedProfile['health']): string {
  return [
    "# Written by hnforge from the profile's health section; read by hn-health.",
    `HN_HEALTH_CHECKS=${quoteValue(health.checks.join(' '))}`,
    `HN_HEALTH_WAIT=${quoteValue(String(health.waitSec))}`,
  ].join('\n') + '\n';
}

/** The timer's schedule as a drop-in: the unit file stays the repository's, unchanged. */
export function timerScheduleDropIn(update: Pick<ResolvedProfile['update'], 'schedule' | 'randomDelay'>): string {
  return ['[Timer]', 'OnCalendar=', `OnCalendar=${update.schedule}`, `RandomizedDelaySec=${update.randomDelay}`, ''].join('\n');
}

const unitName = (f: NodeFile) => f.target.slice(f.target.lastIndexOf('/') + 1);

export const nodeTools: StageDef = {
  name: 'node-tools',
  needs: ['root'],
  title: "Install the node's tools (boot module, hn-update, hn-health, hn-status) and their units",
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 2,
  inputs: (ctx) => ({ files: NODE_FILES, conf: updateConfText(ctx.profile.update), timer: timerScheduleDropIn(ctx.profile.update), instantiate: ctx.profile.instantiate, health: healthConfText(ctx.profile.health) }),
  // Their content is what Debian installs; on Gentoo it reaches the image through the node package.
  files: (ctx) => (ctx.profile.base === 'debian' ? NODE_FILES.map((f) => join(ctx.repoDir, f.source)) : []),
  plan: (ctx) => [
    ...(ctx.profile.base === 'debian' ? NODE_FILES.map((f) => `install ${f.source} -> ${f.target}`) : ['(files installed by sys-apps/hnforge-node)']),
    ...NODE_FILES.filter((f) => f.wantedBy).map((f) => `enable ${unitName(f)} (${f.wantedBy})`),
    `write ${IDENTITY.conf} (state repository ${IDENTITY.warehouseMount}/${ctx.profile.instantiate.statePath})`,
    ...(ctx.profile.instantiate.warehouse ? [`write and enable warehouse.mount (${ctx.profile.instantiate.warehouse.type} ${ctx.profile.instantiate.warehouse.what})`] : []),
    `write ${IMAGE_PATHS.healthConf} (checks: ${ctx.profile.health.checks.join(' ')})`,
    `write ${IMAGE_PATHS.updateConf} (store ${ctx.profile.update.store ?? 'none: hn-update needs --store'}, channel ${ctx.profile.update.channel}, schedule ${ctx.profile.update.schedule})`,
  ],
  async run(ctx, io) {
    const image = imageFs(need(ctx, 'root'));
    for (const f of NODE_FILES) {
      if (ctx.profile.base === 'debian') {
        await image.mkdirp(f.target.slice(0, f.target.lastIndexOf('/')));
        await image.copyIn(join(ctx.repoDir, f.source), f.target, { mode: f.mode });
      } else if (!(await image.exists(f.target))) {
        throw new HnError('EGENTOO_PROFILE', `${f.target} is missing from the image: sys-apps/hnforge-node should have installed it from ${f.source}`);
      }
    }
    for (const f of NODE_FILES.filter((x) => x.wantedBy)) {
      await image.symlink(f.target, `etc/systemd/system/${f.wantedBy}.wants/${unitName(f)}`);
    }
    await image.write(IMAGE_PATHS.updateConf, updateConfText(ctx.profile.update));
    await image.write(IDENTITY.conf, instantiateConfText(ctx.profile.instantiate));
    const warehouse = ctx.profile.instantiate.warehouse;
    if (warehouse) {
      await image.mkdirp(IDENTITY.warehouseMount);
      await image.write('etc/systemd/system/warehouse.mount', warehouseMountUnit(warehouse));
      await image.symlink('/etc/systemd/system/warehouse.mount', 'etc/systemd/system/multi-user.target.wants/warehouse.mount');
    }
    await image.write(IMAGE_PATHS.healthConf, healthConfText(ctx.profile.health));
    await image.write('etc/systemd/system/hn-update.timer.d/schedule.conf', timerScheduleDropIn(ctx.profile.update));
    io.log(`${NODE_FILES.length} node files; ${IMAGE_PATHS.updateConf}: store ${ctx.profile.update.store ?? '(none)'}, channel ${ctx.profile.update.channel}, schedule ${ctx.profile.update.schedule}`);
    return {};
  },
};
