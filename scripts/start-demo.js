// The main job: Node-RED 4.1 (from this project's own dependencies) with this package and the demo flow,
// in a user directory inside the checkout (.node-red/, git-ignored), on http://127.0.0.1:1880.
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const root = path.join(__dirname, '..');
const userDir = process.env.DEEPLAB_USER_DIR || path.join(root, '.node-red');
const port = process.env.PORT || '1880';
const flowFile = path.join(userDir, 'flows.json');

fs.mkdirSync(path.join(userDir, 'node_modules', '@nr-vision'), { recursive: true });
// Install this package into the user directory as Node-RED's palette manager would (a link to the checkout).
const link = path.join(userDir, 'node_modules', '@nr-vision', 'node-red-deeplab');
try {
  fs.rmSync(link, { recursive: true, force: true });
} catch {
  /* nothing to remove */
}
fs.symlinkSync(root, link, 'dir');
if (!fs.existsSync(path.join(userDir, 'package.json'))) {
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true, dependencies: { '@nr-vision/node-red-deeplab': 'file:..' } }, null, 2));
}
// A fresh demo flow unless the user has one (DEEPLAB_DEMO_RESET=1 restores it).
if (!fs.existsSync(flowFile) || process.env.DEEPLAB_DEMO_RESET === '1') {
  fs.copyFileSync(path.join(root, 'demo', 'flows.json'), flowFile);
}
const settings = path.join(userDir, 'settings.js');
if (!fs.existsSync(settings)) {
  fs.writeFileSync(settings, `module.exports = {
  uiHost: '127.0.0.1',
  flowFile: 'flows.json',
  flowFilePretty: true,
  // The editor is for this machine only; see the Node-RED docs to secure it before exposing it.
  editorTheme: { projects: { enabled: false }, tours: false },
  functionExternalModules: false,
};
`);
}

const red = require.resolve('node-red/red.js');
console.log(`Starting Node-RED ${require('node-red/package.json').version} with @nr-vision/node-red-deeplab on http://127.0.0.1:${port}`);
const child = spawn(process.execPath, [red, '--userDir', userDir, '--port', port, ...process.argv.slice(2)], {
  stdio: 'inherit',
  cwd: userDir,
  env: { ...process.env, DEEPLAB_SAMPLES_DIR: path.join(root, 'sample-data') },
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
