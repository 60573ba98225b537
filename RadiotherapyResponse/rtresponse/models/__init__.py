"""Response models: classifiers, feature-table assembly, the selector x classifier grid, saving and loading."""
