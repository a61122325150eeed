/**
 * Fully connected CRF (Krähenbühl & Koltun 2011) with permutohedral-lattice message passing:
 * the public surface. denseCrf is synchronous and CPU-bound: run it in a compute worker
 * (lib/compute/client crf), never on Node-RED's event loop.
 */
export { CrfOptions, CrfResult, CrfTiming, checkCrfInputs, denseCrf, denseCrfSingle, CRF_IDLE_RELEASE_MS, releaseCrfMemory } from './dense-crf';
export { CRF_PARAM_KEYS, CRF_PRESETS, CRF_PRESET_NAMES, CrfParams, CrfPresetName, applyCrfOverride, crfPreset, validateCrfParams } from './params';
export { closeCrfHelper } from './parallel';
export { syntheticScores } from './synthetic';
