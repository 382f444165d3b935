console.log('mofme');
