/** Multi-scale / flip fusion of score maps. */
export * from './msc-fusion';
