// Builds the UI into dist/ (committed: the omnigent binary embeds it, so `cargo build` never needs node).
// `node build.mjs` once, `node build.mjs --watch` while working on it (a debug server reads dist/ from disk).
import { build, context } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const watch = process.argv.includes('--watch');
// `--outdir DIR`: build elsewhere (the test that checks the committed dist/ builds into a temporary dir).
const at = process.argv.indexOf('--outdir');
const out = at > 0 ? process.argv[at + 1] : 'dist';
const options = {
  entryPoints: ['src/main.tsx'],
  bundle: true,
  splitting: true,
  format: 'esm',
  minify: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  target: ['chrome120', 'firefox120', 'safari17'],
  loader: { '.svg': 'file' },
  plugins: [{ name: 'index-html', setup(b) { b.onEnd(writeIndex); } }],
};

// index.html names the hashed entry files; everything else is under assets/.
function writeIndex(result) {
  if (result.errors.length) return;
  const outputs = Object.entries(result.metafile.outputs);
  const entry = outputs.find(([, o]) => o.entryPoint === 'src/main.tsx');
  const name = (file) => '/assets/' + basename(file);
  const html = readFileSync('src/index.html', 'utf8')
    .replace('%MAIN_JS%', name(entry[0]))
    .replace('%MAIN_CSS%', name(entry[1].cssBundle));
  writeFileSync(join(out, 'index.html'), html);
  copyFileSync('src/favicon.svg', join(out, 'favicon.svg'));
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
if (watch) {
  const ctx = await context(options);
  await ctx.watch();
  console.log('watching src/ → dist/ (reload the page after a change)');
} else {
  const result = await build(options);
  for (const [file, o] of Object.entries(result.metafile.outputs)) {
    console.log(`${basename(file).padEnd(32)} ${(o.bytes / 1024).toFixed(1).padStart(7)} KB`);
  }
  console.log(`built into ${join(out, 'assets')} (index.html names the entry files)`);
}
