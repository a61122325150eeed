/** Every module that registers worker tasks; imported once by the worker entry point. */
import './engine-tasks';
import '../fusion/tasks';
