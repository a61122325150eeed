/** Every module that registers worker tasks; imported once by the worker entry point. */
import './engine-tasks';
import '../cache/worker-models';
import '../cache/scoremap-tasks';
import '../fusion/tasks';
import '../crf/crf-tasks';
