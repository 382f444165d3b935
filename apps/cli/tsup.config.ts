import { packageConfig } from '../../tsup.base';

// the bin: dist/main.js with a shebang
export default packageConfig({ entry: { main: 'src/main.ts' }, banner: { js: '#!/usr/bin/env node' } });
