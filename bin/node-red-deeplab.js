#!/usr/bin/env node
'use strict';
// The package's command line (see `node-red-deeplab help`); the code is in lib/cli.ts.
const { main } = require('../dist/lib/cli');
main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
  process.stderr.write(`node-red-deeplab: ${err.message}\n`);
  process.exit(1);
});
