import { packageConfig } from '../../tsup.base';

// gpu is its own entry so that importing the core never loads gpu.js
export default packageConfig({
  entry: { index: 'src/index.ts', testing: 'src/testing/index.ts', gpu: 'src/gpu/index.ts' },
  external: ['gpu.js'],
});
