// Placeholder so the train library has a source until the trainer lands.
