// {{name}}: a wasmpod handler. Try it with `wasmpod run .` (it reads
// test_input.json); serve it with `wasmpod deploy . --endpoint {{name}}`.
import * as wasmpod from 'wasmpod-sdk';

wasmpod.serve((input) => {
  const name = input && typeof input.name === 'string' ? input.name : 'world';
  // Log lines and console output go to the job's logs (`wasmpod logs {{name}}`).
  wasmpod.info(`greeting ${name}`);
  wasmpod.progress('greeting');
  return { greeting: `hello, ${name}` };
});
