// Debian's nginx as a plain file server on 127.0.0.1 for the tests: its own
// prefix, pid and config in a temporary directory, never the system's.

import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Nginx {
  url: string;
  stop(): Promise<void>;
}

/** `accessLog`: a file getting one line per request, `<body bytes sent> <request line>` (for counting bytes transferred). */
export async function startNginx(opts: { root: string; port: number; workDir: string; accessLog?: string }): Promise<Nginx> {
  await mkdir(join(opts.workDir, 'tmp'), { recursive: true });
  const conf = join(opts.workDir, 'nginx.conf');
  // `user root`: the test's directories are 0700; nginx would otherwise drop to nobody.
  await writeFile(conf, `user root;
worker_processes 1;
pid ${join(opts.workDir, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 64; }
http {
  ${opts.accessLog ? `log_format bytes '$body_bytes_sent "$request"';\n  access_log ${opts.accessLog} bytes;` : 'access_log off;'}
  client_body_temp_path ${join(opts.workDir, 'tmp')};
  proxy_temp_path ${join(opts.workDir, 'tmp')};
  fastcgi_temp_path ${join(opts.workDir, 'tmp')};
  uwsgi_temp_path ${join(opts.workDir, 'tmp')};
  scgi_temp_path ${join(opts.workDir, 'tmp')};
  types { application/octet-stream zst gpg; application/json json; text/plain txt; }
  default_type text/plain;
  server {
    listen 127.0.0.1:${opts.port};
    root ${opts.root};
  }
}
`);
  const child = spawn('/usr/sbin/nginx', ['-p', opts.workDir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${opts.port}`;
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr.trim()}`);
    const up = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(() => true, () => false);
    if (up) return { url, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`nginx did not answer on ${url} within 10 s: ${stderr.trim()}`);
}
